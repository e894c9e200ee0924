{#- The recall model's samples: one per click in the train and test days by a user with an earlier interaction
    (int_recall_interactions); the target is the clicked item, and `session_history` says how many of the last
    history entries are in the same session (the session-based task reads those alone). -#}

with

interactions as (

    select * from {{ ref('int_recall_interactions') }}

),

final as (

    select
        user_id,
        session_key,
        ts,
        ds,
        item_id as target_item,
        cart as target_cart,
        buy as target_buy,
        history_items,
        last_history_ts,
        {{ edgerec.list_length('history_items') }} as history_length,
        least(session_interactions_before, {{ var('recall_history') }}) as session_history,
        case when ds = {{ edgerec.ds_var() }} then 'test' else 'train' end as split

    from interactions
    where is_click = 1
      and ds >= {{ edgerec.ds_minus(var('train_days')) }}
      and {{ edgerec.list_length('history_items') }} > 0

)

select * from final
